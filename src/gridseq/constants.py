"""Values every layer shares, defined below all of them so nn/, models/, data/ and tasks/ import them
from here rather than from each other.

- Token ids: every `Vocab` starts with `SPECIALS`, so `<pad>`, `<unk>`, `<bos>` and `<eos>` have the ids
  `PAD`, `UNK`, `BOS`, `EOS` in every vocabulary (decoders start from BOS and stop at EOS; padding is PAD).
- `IGNORE_INDEX`: the target of an item, step or pixel that carries no label (-100, the default
  `ignore_index` of `torch.nn.functional.cross_entropy`): unlabelled mask pixels, unscored tagging steps.
- `KINDS`: the data kinds a `DatasetInfo` can be and a registered model can take.
"""

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = 0, 1, 2, 3
IGNORE_INDEX = -100
KINDS = ("image", "sequence", "tokens", "video", "series")
