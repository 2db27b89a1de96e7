"""Objects kept in thinc `Model.attrs` that serialize themselves."""

from typing import Any, Type, TypeVar

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
