import os

# A stray pretrained=True must fail in 0.1 s instead of retrying the hub for ~46 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
