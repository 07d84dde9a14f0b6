"""`zlib`: the loss relative to how compressible the text is (Carlini et al., 2021).

Repetitive or boilerplate text gets a low loss from any model; dividing the loss by the zlib
entropy of the text discounts what is merely easy, leaving what this model finds unusually easy.
"""

from harness import Attack, Evidence, hookimpl


def zlib_score(evidence: Evidence, args: dict):
    return -evidence.loss / evidence.zlib_bits


@hookimpl
def register_attacks(register):
    register(Attack(name="zlib", description="negative loss over zlib entropy of the text", score=zlib_score,
                    paper="Carlini et al., 2021, arXiv:2012.07805"))
