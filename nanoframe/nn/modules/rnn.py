"""torch.nn.modules.rnn's path: the recurrent layers, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
