# Prototype: uvicorn's compiled event loop and HTTP parser (what uvicorn[standard] adds). The
# worker's "auto" loop and http settings pick them up once installed: no other change.
# Built on the bench's image of the shipped code (BASE), as an extra layer.
ARG BASE
FROM ${BASE}
USER 0:0
RUN pip install --no-cache-dir uvloop==0.23.0 httptools==0.9.0
USER 33:33
