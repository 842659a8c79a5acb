"""Placeholder router until the researcher routes land."""

from fastapi import APIRouter

router = APIRouter()
