"""Admin routes; they need the ``X-API-Key`` header to match ``FSML_API_KEY``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from fsml.errors import FsmlError
from serving.deps import AdminDep, StateDep
from serving.schemas import ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadResponse)
async def reload(_: AdminDep, state: StateDep) -> dict[str, object]:
    """Load the registry's current champion and swap it in without dropping requests."""
    try:
        previous, scorer = await state.reload()
    except FsmlError as exc:
        raise HTTPException(409, detail=exc.message) from None
    except Exception as exc:  # the registry may be unreachable: keep serving the current model
        raise HTTPException(
            503, detail=f"reload failed, still serving the previous model: {exc}"
        ) from None
    return {
        "reloaded": previous != scorer.version,
        "previous_version": previous,
        "version": scorer.version,
    }
