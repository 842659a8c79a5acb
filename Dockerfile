# Web + analysis image (no torch): serves the study with several uvicorn workers against DATABASE_URL.
#   docker build -t scoft-study .
#   docker run -p 8000:8000 -e DATABASE_URL=postgresql+psycopg://user:pw@db/study -e SECRET_KEY=... \
#              -e RESEARCHER_TOKEN=... -v study-media:/srv/var scoft-study
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 PORT=8000 WORKERS=4 \
    DATABASE_URL=sqlite:////srv/var/study.db MEDIA_ROOT=/srv/var/media

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY study_designs ./study_designs
COPY app ./app
COPY analysis ./analysis
RUN mkdir -p scoft && touch scoft/__init__.py \
 && pip install -c constraints.txt '.[web,analysis]' \
 && useradd --system --home /srv scoft && mkdir -p /srv/var && chown scoft /srv/var

USER scoft
WORKDIR /srv
VOLUME ["/srv/var"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["sh", "-c", "exec python -m app --host \"$HOST\" --port \"$PORT\" --workers \"$WORKERS\""]
