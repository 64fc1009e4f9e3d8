# Serve one trained Strata bundle over HTTP.
#   docker build -t strata-serve --build-arg BUNDLE=models/penguins .
#   docker run --rm -p 8000:8000 strata-serve
# CPU-only torch (the wheel from PyTorch's CPU index), pinned versions from requirements.lock,
# a non-root user, and a health check on /health. Not built in CI (no Docker there).
FROM python:3.11-slim

ARG BUNDLE=models/penguins
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=1

WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY src ./src
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -c requirements.lock ".[serve]" \
 && useradd --create-home --uid 10001 strata
COPY --chown=strata ${BUNDLE} /app/model

USER strata
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
# 0.0.0.0 inside the container: the published port is the boundary (docker run -p 127.0.0.1:8000:8000 to keep it local)
CMD ["strata", "serve", "/app/model", "--host", "0.0.0.0", "--port", "8000"]
