"""Classical baselines that gridseq's neural models are measured against, fitted on the training split only:
`IBM1` (word-by-word translation from IBM Model 1 alignments) and `KneserNey` (an interpolated Kneser-Ney
character n-gram language model)."""

from gridseq.baselines.ibm1 import IBM1
from gridseq.baselines.kneser_ney import KneserNey

__all__ = ["IBM1", "KneserNey"]
