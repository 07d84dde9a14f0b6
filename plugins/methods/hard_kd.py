"""`hard-kd` (sequence-level KD, `seqkd`): Kim & Rush (2016), "Sequence-Level Knowledge Distillation".

The teacher greedily continues the first `prefix_len` tokens of each member to the example's
full length, and the student is trained with plain cross-entropy on those texts. The student
sees only the teacher's text, never its probabilities.

Training: the preset's student recipe: the student is fine-tuned on the teacher's text as the
baseline is on the data; Kim & Rush give no separate recipe that transfers to this scale.
"""

from harness import KDMethod, TeacherData, hookimpl


def teacher_continuations(data: TeacherData, args: dict):
    prompts = data.member_ids[:, : data.prefix_len]
    new_tokens = data.member_ids.shape[1] - data.prefix_len
    return data.generate(data.teacher, prompts, new_tokens)


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="hard-kd",
        aliases=("seqkd",),
        description="cross-entropy on the teacher's greedy continuations of each member's prefix",
        teacher_access="text",
        make_data=teacher_continuations,
        paper="Kim & Rush, 2016, arXiv:1606.07947",
    ))
