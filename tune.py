"""Run an nsr-tune study on Ray Tune.

    ray submit cluster/config.yaml tune.py -- --space mitbih_wide --storage s3://BUCKET/nsr-tune
    python tune.py --space search_spaces/mitbih_wide.yaml
    python tune.py --dry-run

`ray submit` copies only this file to the head node; the nsr_tune package reaches every node
through the cluster config (see cluster/). This is the same command as `nsr-tune tune`.
"""

import sys

from nsr_tune.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
