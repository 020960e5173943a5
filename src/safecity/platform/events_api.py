"""Routes: filled in by the work on this area."""

from fastapi import APIRouter

router = APIRouter()
