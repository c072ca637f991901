"""Store a trained checkpoint's weights as float16 for shipping (half the file; loading casts back).

    .venv/bin/python tools/half_checkpoint.py runs/NAME/best.pt src/ferkit/weights/NAME.pt
"""

import sys

from ferkit.core.checkpoint import save_half

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(save_half(sys.argv[1], sys.argv[2]))
