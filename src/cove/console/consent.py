"""(skeleton: the console helper that owns this section replaces it)"""

from fastapi import APIRouter

router = APIRouter()
