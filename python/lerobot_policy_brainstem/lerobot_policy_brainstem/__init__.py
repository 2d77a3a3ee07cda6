"""lerobot's policy plugin for brainstem: importing it registers the policy type `brainstem`
with lerobot (as lerobot's `register_third_party_plugins` does for installed
`lerobot_policy_*` distributions), so lerobot's tools load a brainstem folder that
`export` wrote from any SmolVLA, pi0, pi0.5 or pi0-FAST checkpoint.

    python -m lerobot_policy_brainstem export outputs/smolvla brainstem-smolvla --quantize q8_0
    lerobot-eval --policy.path=brainstem-smolvla ...
"""

from .configuration_brainstem import BrainstemConfig
from .export import export
from .modeling_brainstem import BrainstemPolicy
from .processor_brainstem import make_brainstem_pre_post_processors


def _allow_async_inference() -> None:
    """lerobot 0.6.1's PolicyServer refuses any policy type missing from its hard-coded list
    (`async_inference.constants.SUPPORTED_POLICIES`) before it asks the registry; the type
    registered here joins that list so the server serves it."""
    try:
        from lerobot.async_inference import constants
    except ImportError:  # lerobot installed without its async extra
        return
    if "brainstem" not in constants.SUPPORTED_POLICIES:
        constants.SUPPORTED_POLICIES.append("brainstem")


_allow_async_inference()

__all__ = ["BrainstemConfig", "BrainstemPolicy", "export", "make_brainstem_pre_post_processors"]
