"""Placeholder router until the api routes land."""

from fastapi import APIRouter

router = APIRouter()
