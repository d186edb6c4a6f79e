"""How much one person's block or report counts: the chance that their complaints are right, learnt from how
often a reviewer upheld the ones that were judged.

Most people who report show no skill at it (LinkedIn measured that at most 2.4 % of those reporting fake
accounts did better than chance: David Freeman, "Can You Spot the Fakes? On the Limitations of User Feedback in
Online Social Networks", WWW 2017), so a reporter starts low and earns weight only by being right. The estimate is
the mean of a Beta(PRIOR_UPHELD + upheld, PRIOR_REJECTED + rejected) posterior: with no history a complaint counts
a quarter; ten upheld out of ten bring it near 0.8; ten rejected bring it under 0.1.
"""

from __future__ import annotations

PRIOR_UPHELD = 1.0
PRIOR_REJECTED = 3.0


def weight(upheld: int, judged: int) -> float:
    """The reporter's weight in [0, 1] from ``judged`` decided reports of which ``upheld`` were right."""
    if not 0 <= upheld <= judged:
        raise ValueError(f"upheld ({upheld}) must lie between 0 and judged ({judged})")
    return (PRIOR_UPHELD + upheld) / (PRIOR_UPHELD + PRIOR_REJECTED + judged)
