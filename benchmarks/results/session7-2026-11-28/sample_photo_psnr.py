import sys, time, warnings
sys.path.insert(0, "examples")
import numpy as np
from make_blurry_sample import sample_kernel_and_image
from refdeblur import deblur, DeblurWarning
from refdeblur.image_io import read_image
from refdeblur.metrics import psnr_up_to_shift
blurry8, true_k, sharp = sample_kernel_and_image()
print("true kernel size", true_k.shape)
def score(img):
    img = np.asarray(img, float)
    if img.dtype != float or img.max() > 1.5: img = img / 255.0
    return np.mean([psnr_up_to_shift(img[..., c], sharp[..., c], data_range=1.0, crop=20, max_shift=5, step=1) for c in range(3)])
print("blurry", round(score(blurry8 / 255.0), 2))
for size in (17, 25, 33):
    for refine in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            t = time.perf_counter(); out, k = deblur(blurry8, size, channel_axis=-1, refine=refine); dt = time.perf_counter() - t
        print(size, "refined" if refine else "network", round(score(out / 255.0), 2), f"{dt:.1f}s")
for size in (25, 33):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        out, k = deblur(blurry8, size, channel_axis=-1, refine={"coarse_to_fine": False})
    print(size, "finest scale refined (session 6)", round(score(out / 255.0), 2))
