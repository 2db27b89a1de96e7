"""Objects kept in thinc `Model.attrs` that serialize themselves."""

from typing import Any, Type, TypeVar

import srsly
from thinc.api import Model, deserialize_attr, serialize_attr

T = TypeVar("T")


def bytes_attr(cls: Type[T]) -> Type[T]:
    """Class decorator: thinc saves instances of `cls` in a model's attrs with
    their `to_bytes()` and restores them with `cls.from_bytes(data)`."""

    @serialize_attr.register(cls)
    def _serialize(_: Any, value: Any, name: str, model: Model) -> bytes:
        return value.to_bytes()

    @deserialize_attr.register(cls)
    def _deserialize(_: Any, value: bytes, name: str, model: Model) -> Any:
        return cls.from_bytes(value)  # type: ignore[attr-defined]

    return cls


class ConfigSetting(str):
    """A string setting kept in a model's attrs that the config decides: it is
    saved with the model (for the record) but on load the value built from
    the config wins, so a config override changes it."""


@serialize_attr.register(ConfigSetting)
def _serialize_setting(_: ConfigSetting, value: ConfigSetting, name: str, model: Model) -> bytes:
    return srsly.msgpack_dumps(str(value))


@deserialize_attr.register(ConfigSetting)
def _deserialize_setting(current: ConfigSetting, value: bytes, name: str, model: Model) -> ConfigSetting:
    return current
