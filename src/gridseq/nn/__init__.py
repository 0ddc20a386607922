"""Building blocks, each a torch.nn.Module: recurrent cells and layers, conv blocks, attention, decoders,
the per-frame wrapper for video and the streaming interface."""

from gridseq.nn.cells import ElmanCell, GRUCell, LSTMCell
from gridseq.nn.recurrent import Recurrent
from gridseq.nn.sequence import final_features, last_valid, length_mask, masked_max, masked_mean
from gridseq.nn.conv import Conv, ConvBlock, Down, MaxPool, Up, Upsample
from gridseq.nn.attention import Attention, AttentionMemory
from gridseq.nn.decoder import Decoded, Decoder, StateBridge
from gridseq.nn.time_distributed import TimeDistributed
from gridseq.nn.stream import Stream
