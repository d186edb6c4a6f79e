"""(skeleton: the helper that owns this part replaces it)"""

from fastapi import APIRouter

router = APIRouter()
