"""rnngen: recurrent language models from the command line.

This module holds the version only, so `import rnngen` (and `rnngen --help`) stays fast and
never imports torch.
"""

__version__ = "0.1.0"
