import os

from hypothesis import settings

# A bounded profile for CI; `HYPOTHESIS_PROFILE=dev` explores more locally.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
