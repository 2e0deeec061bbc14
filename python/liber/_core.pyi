"""Types of liber's C++ extension (python/src/module.cpp)."""
from typing import Any

import numpy as np
import numpy.typing as npt

class Error(RuntimeError):
    """A liber error: the message names the file, field or store it is about."""

class Store:
    def __init__(self, path: str, writable: bool = False) -> None: ...
    def users(self) -> list[str]:
        """Every user with state in the store (external ids, store order)."""
    def partitions(self, user: str) -> list[dict[str, Any]]:
        """The user's closed partitions: seq, t_begin, t_end, events, reason."""
    def variants(self) -> list[dict[str, Any]]:
        """The named LLM variants: name, id, model, partitions, cascade."""
    def records(self, user: str, variant: str = "cascade") -> list[dict[str, Any]]:
        """The user's interest records of a variant: seq, ok, quality, summary, shift, reasons, error, model."""
    def ingest_events(self, users: list[str], items: list[str], timestamps: npt.NDArray[np.int64],
                      ratings: npt.NDArray[np.float32], labels: npt.NDArray[np.int8], batch: int,
                      progress: Any = None) -> dict[str, Any]:
        """Events into a writable store (see liber.ingest); progress(advanced, total)."""
    def learn(self, engine: dict[str, Any], options: dict[str, Any], progress: Any = None) -> str:
        """UIL on a writable store (see liber.learn); returns the cost report as JSON."""
    def encode(self, engine: dict[str, Any], batch: int = 64, replace: bool = False,
               item_knowledge: bool = False, progress: Any = None) -> dict[str, Any]:
        """The knowledge encoder on a writable store (see liber.encode)."""
    def interest_table(self, knowledge: str, users: list[str] = ..., control: str = "", seed: int = 1) -> InterestTable:
        """Partition vectors: "content", a variant name (its verified records), or "VARIANT+content".
        control="shuffled" (each user's rows from another user) or "random" (standard-normal rows):
        the same partitions and times without the knowledge, the controls a lift must beat."""

class InterestTable:
    knowledge: str
    encoder: str
    dim: int
    width: int
    layout: str
    users: list[str]
    rows: npt.NDArray[np.float32]
    """[partitions, width], a read-only view of the table (no copy)."""
    def __len__(self) -> int: ...
    def partition_index(self) -> npt.NDArray[np.int64]:
        """[partitions, 4]: seq, t_begin, t_end, row of each partition (users[i] is its user)."""
    def join(self, users: list[str], timestamps: npt.NDArray[np.int64], slots: int) -> npt.NDArray[np.int32]:
        """The leakage-safe join (see liber.join)."""

class CppFuseLayer:
    """liber's C++ fuse layer (libtorch), the reference liber.fuse.FuseLayer is tested against."""
    def __init__(self, table: npt.NDArray[np.float32], query_dim: int, slots: int = 16, hidden: int = 16,
                 fused_dim: int = 32, reduced_dim: int = 64, fusion: str = "attention",
                 interaction: bool = False) -> None: ...
    def state(self) -> dict[str, npt.NDArray[np.float32]]:
        """Every parameter and buffer by its name (the PyTorch module's state_dict names)."""
    def set_parameter(self, name: str, value: npt.NDArray[np.float32]) -> None: ...
    def forward(self, rows: npt.NDArray[np.int64], query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
