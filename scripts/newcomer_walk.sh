#!/usr/bin/env bash
# The newcomer path on real clinical files that the installed packages ship, end to end:
#   data check -> VAE -> encode -> diffusion -> sample -> evaluate -> reconstruct
# with the commands README documents ("Walk-through: your own clinical videos"). Not a test: it
# trains for minutes. Step counts are tiny, so every figure it prints is smoke-level.
#
#   scripts/newcomer_walk.sh [WORK_DIR]        # default ${TMPDIR:-/tmp}/medsora-walk
#
# Environment: VAE_STEPS (30), DIFF_STEPS (40), SIZE (64 px clips), LIMIT (seconds per command, 900),
# OMP_NUM_THREADS (1). Every command's output is kept in WORK_DIR/<n>_<step>.log; a rerun into the
# same WORK_DIR starts over (it removes only the folders this script writes there).
set -euo pipefail

WORK=$(realpath -m "${1:-${TMPDIR:-/tmp}/medsora-walk}")
VAE_STEPS=${VAE_STEPS:-30}
DIFF_STEPS=${DIFF_STEPS:-40}
SIZE=${SIZE:-64}
LIMIT=${LIMIT:-900}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ROOT=$WORK/clinical
RUNS=$WORK/runs
cd "$(dirname "$0")/.."  # the repository, so that `python -m medsora.X` is this checkout's
mkdir -p "$WORK"
rm -rf "$ROOT" "$RUNS" "$WORK/cache" "$WORK/samples" "$WORK/recon" "$WORK/eval.json" "$WORK/eval.md" "$WORK"/*.log

# 0. The data folder, as README's Data section asks: one sub-folder per modality (no manifest needed).
python - "$ROOT" <<'EOF'
import shutil, sys
from pathlib import Path

import skimage
from nibabel.testing import data_path as nibabel_data
from pydicom.data import get_testdata_file

root = Path(sys.argv[1])
skimage_data = Path(skimage.__file__).parent / "data"
files = {
    "ultrasound/echo_cine.dcm": get_testdata_file("examples_ybr_color.dcm", download=False),  # 30-frame US cine, YBR JPEG
    "mri/fmri_4d.nii.gz": Path(nibabel_data) / "example4d.nii.gz",        # 4-D fMRI, 2 time points
    "mri/functional.nii": Path(nibabel_data) / "functional.nii",          # 4-D fMRI, 20 time points
    "mri/anatomical.nii": Path(nibabel_data) / "anatomical.nii",          # 3-D anatomy: slices as frames
    "microscopy/multipage.tif": skimage_data / "multipage.tif",           # 2-page TIFF stack
    "microscopy/multipage_rgb.tif": skimage_data / "multipage_rgb.tif",   # 2-page planar RGB TIFF
}
for name, source in files.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, root / name)
    print(f"{name:32s} <- {source}")
EOF

run() {  # run NAME COMMAND...: print the command, keep its output in WORK/NAME.log, stop the walk on failure
    local name=$1
    shift
    echo
    echo "\$ $*"
    timeout "$LIMIT" "$@" 2>&1 | tee "$WORK/$name.log"
}
last_ckpt() { grep -oP 'last checkpoint\s+\K\S+' "$WORK/$1.log" | tail -1; }

# The clip settings every stage shares: README's data=folder at SIZE px, 17 frames at stride 1 (the default
# stride 3 spans 49 frames, longer than every one of these videos: data check says so).
COMMON=(data=folder "data.root=$ROOT" "data.size=$SIZE" data.frame_stride=1 "out_dir=$RUNS")

run 1_check python -m medsora.data check "$ROOT" --no-progress
run 1_check_run python -m medsora.data check "$ROOT" experiment=vae_demo "${COMMON[@]}" --no-progress
run 2_vae python -m medsora.fit experiment=vae_demo "${COMMON[@]}" "trainer.max_steps=$VAE_STEPS" \
    "trainer.val_check_interval=$VAE_STEPS"
VAE=$(last_ckpt 2_vae)
run 3_encode python -m medsora.encode experiment=diffusion_demo "${COMMON[@]}" "vae.ckpt=$VAE" \
    "data.cache=$WORK/cache" --no-progress
# data.batch_size: diffusion_demo's 8 is more than the 5 training clips these six videos give
run 4_diffusion python -m medsora.fit experiment=diffusion_demo "${COMMON[@]}" "vae.ckpt=$VAE" \
    "data.cache=$WORK/cache" data.batch_size=4 "trainer.max_steps=$DIFF_STEPS" "trainer.val_check_interval=$DIFF_STEPS"
DIFF=$(last_ckpt 4_diffusion)
run 5_sample python -m medsora.sample --ckpt "$DIFF" --out "$WORK/samples" --num 4 --steps 10 --no-progress
run 6_evaluate python -m medsora.evaluate --fake "$WORK/samples" --real "$ROOT" --out "$WORK/eval.json" \
    --dims-on-real --no-progress
run 7_reconstruct python -m medsora.reconstruct --vae "$VAE" --input "$ROOT" --out "$WORK/recon" --no-progress
echo
echo "walk finished: logs in $WORK/*.log, samples in $WORK/samples, reconstructions in $WORK/recon"
