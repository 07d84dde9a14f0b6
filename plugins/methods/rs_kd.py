"""`rs-kd`: random-sampling KD (Anshumann et al., 2025, "Sparse Logit Sampling").

Distilling from stored logits keeps a few tokens per position. Keeping the teacher's top K and
renormalising over them (`topk-kd`) is biased: the student is taught that the tail has no mass.
Anshumann et al. instead draw the sparse target from the teacher's distribution by importance
sampling, which is unbiased: it preserves the gradient of full distillation in expectation. With
the teacher itself as the proposal the importance weights are all equal, and the target of a
position is the share of the k draws v_1 .. v_k ~ p that fell on each token:
  loss = -(1/k) sum_j log q(v_j)  =  -sum_v (count(v) / k) log q(v),
whose expectation is the cross-entropy H(p, q) = KL(p || q) + H(p), so its gradient is forward
KL's in expectation, with q the student's softmax over the whole vocabulary.

Departures: the paper samples once and stores the sparse targets; here the teacher's full logits
are kept (see `harness.training.distill`) and the k tokens are drawn afresh at every step, from
the run's seeded generator, which is unbiased all the same and varies the draws across epochs.
So `teacher_access` is "logits": the sampler reads the whole distribution, though the student's
gradient sees only the sampled tokens. The paper does not give a number of draws that transfers
to this scale (it reports about 12 distinct tokens per position matching full KD on its models);
k = 64 by default, the budget of `topk-kd`'s K, so the two compare at equal cost. Training: the
preset's student recipe (the paper distils with its models' own pretraining recipe, not a
separate one).
"""

from harness import F, KDMethod, LogitBatch, Param, hookimpl, torch


def rs_kd_loss(batch: LogitBatch, args: dict):
    probs = F.softmax(batch.teacher_logits.float(), -1).flatten(0, -2)  # (positions, vocab)
    draws = torch.multinomial(probs, args["k"], replacement=True)  # (positions, k) token ids drawn from p
    log_q = F.log_softmax(batch.student_logits.float(), -1).flatten(0, -2)
    return -log_q.gather(-1, draws).mean()


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="rs-kd",
        description="random-sampling KD: cross-entropy on k tokens drawn from the teacher's distribution "
                    "(unbiased sparse targets)",
        teacher_access="logits",
        params=(Param("k", int, 64, "tokens drawn from the teacher per position", min=1, max=1 << 20),),
        loss=rs_kd_loss,
        paper="Anshumann et al., 2025, arXiv:2503.16870",
    ))
