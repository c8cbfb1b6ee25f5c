"""Type stubs for xenc's native module (python/src/lib.rs). Use ``xenc.CrossEncoder``, which wraps it."""

from os import PathLike
from typing import Any, Callable, Optional, Sequence, Union

__version__: str

class Model:
    """A loaded cross-encoder; immutable and shareable across threads."""

    def __new__(
        cls,
        model_dir: Union[str, PathLike[str]],
        device: str = "auto",
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
        token_budget: Optional[int] = None,
        activation: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Model: ...
    def predict(
        self,
        pairs: Sequence[Sequence[str]],
        activation: Optional[str] = None,
        progress: Optional[Callable[[int], Any]] = None,
    ) -> bytearray:
        """Scores as the bytes of native-endian float32 values, ``num_labels`` a pair, in input order."""
    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        activation: Optional[str] = None,
        progress: Optional[Callable[[int], Any]] = None,
    ) -> list[tuple[int, float]]:
        """(index, score) best first; ties keep input order."""
    @property
    def device(self) -> str: ...
    @property
    def device_name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def max_length(self) -> int: ...
    @property
    def token_budget(self) -> int: ...
    @property
    def model_dir(self) -> str: ...
    @property
    def activation(self) -> str: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def label(self) -> Optional[int]: ...
    def check_rankable(self) -> None: ...
    @property
    def config(self) -> dict[str, Any]: ...
