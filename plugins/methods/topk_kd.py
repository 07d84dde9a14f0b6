"""`topk-kd`: soft KD from only the teacher's K largest logits per position, renormalised.

Distilling from stored logits keeps just the top K of each position (the full vocabulary is too
large to store): the common practice of sparse-logit distillation. The teacher's distribution is
renormalised over its K tokens and the student matches it there:
  sum_{v in K} p_K(v) (log p_K(v) - log q(v)) * T^2
with q the student's softmax over the whole vocabulary. The student never sees the teacher's
tail, which bounds what it can copy.

This is the "Top-K" baseline that Anshumann et al. (2025, "Sparse Logit Sampling") analyse and
show to be biased (the renormalised target gives the tail no mass, which miscalibrates the
student); their own method, random-sampling KD, is `rs-kd`. The citation is to that analysis,
not to a paper that proposes this loss. K = 64 and T = 2 are this harness's choices, not a
paper's; training: the preset's student recipe.
"""

from harness import KDMethod, Param, TopKBatch, hookimpl, top_k_kl


def topk_kd_loss(batch: TopKBatch, args: dict):
    t = args["temperature"]
    return top_k_kl(batch.student_logits, batch.teacher_values, batch.teacher_indices, temperature=t) * t * t


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="topk-kd",
        description="soft KD against the teacher's top-K logits only, as distillation from stored logits does",
        teacher_access="top-k logits",
        params=(
            Param("k", int, 64, "how many of the teacher's largest logits are kept per position", min=1, max=1 << 20),
            Param("temperature", float, 2.0, "softmax temperature T", min=0.05, max=100.0),
        ),
        loss=topk_kd_loss,
        top_k=lambda args: args["k"],
        paper="renormalised top-K, the sparse-logit KD practice analysed (and shown biased) by "
              "Anshumann et al., 2025, arXiv:2503.16870",
    ))
