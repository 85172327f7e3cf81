"""CPU latency of RINE on the two TinyCLIP architectures, next to the pre-processing pipeline of
Team 91's report ("From Pixels to Proof"): the RINE rows of
``python -m pixelproof.benchmarks.latency`` (all the measuring lives there), written to results.md.

    python experiments/rine_latency/benchmark.py                    # 2 threads
    python experiments/rine_latency/benchmark.py threads=8 iters=50 # any latency override
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    command = [
        sys.executable,
        "-m",
        "pixelproof.benchmarks.latency",
        "only=[rine_tinyclip_8m16,rine_tinyclip_40m32]",
        "variants=[reference,batched,native,inference_mode]",
        f"output={HERE / 'results.md'}",
        *sys.argv[1:],
    ]
    sys.exit(subprocess.call(command))
