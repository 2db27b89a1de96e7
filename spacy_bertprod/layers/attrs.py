"""Objects kept in thinc `Model.attrs` that serialize themselves."""

from typing import Any, Type, TypeVar

import srsly
from thinc.api import Model, deserialize_attr, serialize_attr

from ..errors import Errors

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


class ConfigInt(int):
    """An integer setting kept in a model's attrs that the config decides,
    like `ConfigSetting`: saved for the record, the config's value wins on
    load (e.g. the encoder's `window`)."""


class ConfigFloat(float):
    """A float setting kept in a model's attrs that the config decides, like
    `ConfigSetting`."""


@serialize_attr.register(ConfigInt)
@serialize_attr.register(ConfigFloat)
def _serialize_number(_: Any, value: Any, name: str, model: Model) -> bytes:
    return srsly.msgpack_dumps(value.real)


@deserialize_attr.register(ConfigInt)
@deserialize_attr.register(ConfigFloat)
def _deserialize_number(current: Any, value: bytes, name: str, model: Model) -> Any:
    return current


class TrainedInt(int):
    """An integer setting the trained weights are sized for (e.g. how many
    neighbours' casing a tagger sees): on load the config must give the
    saved value, or loading raises E071 (a different one cannot take
    effect)."""


@serialize_attr.register(TrainedInt)
def _serialize_trained(_: TrainedInt, value: TrainedInt, name: str, model: Model) -> bytes:
    return srsly.msgpack_dumps(int(value))


@deserialize_attr.register(TrainedInt)
def _deserialize_trained(current: TrainedInt, value: bytes, name: str, model: Model) -> TrainedInt:
    saved = srsly.msgpack_loads(value)
    if saved != current:
        raise ValueError(Errors.E071.format(layer=model.name, attr=name, saved=saved, value=int(current)))
    return current
