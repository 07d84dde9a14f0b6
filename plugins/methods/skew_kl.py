"""`skew-kl` and `skew-rkl`: DistiLLM's skewed KL divergences (Ko et al., 2024).

Plain KL is unstable where the student gives a teacher token almost no probability. DistiLLM
compares against a mixture instead, which keeps the loss and its gradient bounded:
  skew KL      KL(p || alpha p + (1 - alpha) q)
  skew reverse KL(q || alpha q + (1 - alpha) p)
with p the teacher, q the student and a small alpha (0.1 in the paper).

Training: the preset's student recipe; the paper gives no distillation recipe apart from its
fine-tuning one that transfers to this scale.
"""

from harness import KDMethod, LogitBatch, Param, hookimpl, skew_kl, skew_reverse_kl

ALPHA = Param("alpha", float, 0.1, "skew: weight of the target's own distribution in the mixture",
              min=0.0, max=0.99)


def skew_kl_loss(batch: LogitBatch, args: dict):
    return skew_kl(batch.student_logits, batch.teacher_logits, args["alpha"])


def skew_rkl_loss(batch: LogitBatch, args: dict):
    return skew_reverse_kl(batch.student_logits, batch.teacher_logits, args["alpha"])


@hookimpl
def register_kd_methods(register):
    paper = "Ko et al., 2024, arXiv:2402.03898"
    register(KDMethod(name="skew-kl", description="DistiLLM skew KL(p || alpha p + (1 - alpha) q)",
                      teacher_access="logits", params=(ALPHA,), loss=skew_kl_loss, paper=paper))
    register(KDMethod(name="skew-rkl", description="DistiLLM skew reverse KL(q || alpha q + (1 - alpha) p)",
                      teacher_access="logits", params=(ALPHA,), loss=skew_rkl_loss, paper=paper))
