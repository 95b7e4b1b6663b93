"""Device profiles for the cost model: built-in TOML files, the user's ``--devices`` file,
and the host CPU's calibration (``hcompile devices --calibrate``).

    devices = load_devices("my-devices.toml")     # or None for the built-in set
    devices["gpu"].peak("float32")
"""

from hcompile.devices.catalog import (
    DEFAULT_PROFILES,
    DeviceSet,
    builtin_links,
    builtin_names,
    builtin_profile,
    load_devices,
)
from hcompile.devices.profile import (
    OP_KINDS,
    DeviceProfile,
    Efficiency,
    FpgaModel,
    LinkProfile,
)

__all__ = [
    "DEFAULT_PROFILES",
    "OP_KINDS",
    "DeviceProfile",
    "DeviceSet",
    "Efficiency",
    "FpgaModel",
    "LinkProfile",
    "builtin_links",
    "builtin_names",
    "builtin_profile",
    "load_devices",
]
