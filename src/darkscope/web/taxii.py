"""The TAXII 2.1 endpoints of ``darkscope serve`` (the collections are built in
:mod:`darkscope.intel.taxii`): discovery, the API root, collections, objects, one object, its
versions and the manifest. Read-only: adding or deleting objects is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from darkscope.intel.taxii import (
    ROOT,
    TAXII,
    Feed,
    Query,
    TaxiiError,
    accepts_taxii,
    envelope_headers,
    manifest_envelope,
    objects_envelope,
)

MAX_CONTENT = 64 * 1024


def taxii_response(body: dict[str, Any], status: int = 200,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=TAXII, headers=headers)


def _accepts(request: Request) -> None:
    if not accepts_taxii(request.headers.get("accept")):
        raise TaxiiError(406, "this server speaks application/taxii+json;version=2.1",
                         request.headers.get("accept", "")[:200])


def router(feed: Feed, guard: Callable[..., Any]) -> APIRouter:
    api = APIRouter(prefix="/taxii2", include_in_schema=False,
                    dependencies=[Depends(guard), Depends(_accepts)])

    def root_of(api_root: str) -> None:
        if api_root != ROOT:
            raise TaxiiError(404, "no such API root", api_root[:100])

    @api.get("/")
    def discovery(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return taxii_response({
            "title": "darkscope", "description": "Findings of a network telescope monitored "
                                                 "with darkscope",
            "default": f"{base}/taxii2/{ROOT}/", "api_roots": [f"{base}/taxii2/{ROOT}/"]})

    @api.get("/{api_root}/")
    def api_root_info(api_root: str) -> JSONResponse:
        root_of(api_root)
        return taxii_response({
            "title": f"{feed.settings.operator}: telescope findings",
            "description": "Scanners, indicators of confirmed scanners, and DDoS victims seen "
                           "by a network telescope (darkscope); read only.",
            "versions": [TAXII], "max_content_length": MAX_CONTENT})

    @api.get("/{api_root}/collections/")
    def collections(api_root: str) -> JSONResponse:
        root_of(api_root)
        feed.refresh()
        return taxii_response({"collections": [c.info() for c in feed.collections.values()]})

    @api.get("/{api_root}/collections/{collection_id}/")
    def collection(api_root: str, collection_id: str) -> JSONResponse:
        root_of(api_root)
        return taxii_response(feed.collection(collection_id).info())

    @api.get("/{api_root}/collections/{collection_id}/objects/")
    def objects(api_root: str, collection_id: str, request: Request) -> JSONResponse:
        root_of(api_root)
        found, more = Query.parse(dict(request.query_params)).page(
            feed.collection(collection_id))
        return taxii_response(objects_envelope(found, more), headers=envelope_headers(found))

    @api.get("/{api_root}/collections/{collection_id}/manifest/")
    def manifest(api_root: str, collection_id: str, request: Request) -> JSONResponse:
        root_of(api_root)
        found, more = Query.parse(dict(request.query_params)).page(
            feed.collection(collection_id))
        return taxii_response(manifest_envelope(found, more), headers=envelope_headers(found))

    def one(collection_id: str, object_id: str, request: Request):
        params = {**request.query_params, "match[id]": object_id}
        found, more = Query.parse(params).page(feed.collection(collection_id))
        if not found:
            raise TaxiiError(404, "no such object in this collection", object_id[:100])
        return found, more

    @api.get("/{api_root}/collections/{collection_id}/objects/{object_id}/")
    def get_object(api_root: str, collection_id: str, object_id: str,
                   request: Request) -> JSONResponse:
        root_of(api_root)
        found, more = one(collection_id, object_id, request)
        return taxii_response(objects_envelope(found, more), headers=envelope_headers(found))

    @api.get("/{api_root}/collections/{collection_id}/objects/{object_id}/versions/")
    def versions(api_root: str, collection_id: str, object_id: str,
                 request: Request) -> JSONResponse:
        root_of(api_root)
        found, _ = one(collection_id, object_id, request)
        return taxii_response({"more": False, "versions": [e.version for e in found]},
                              headers=envelope_headers(found))

    def read_only(api_root: str, collection_id: str) -> JSONResponse:
        root_of(api_root)
        feed.collection(collection_id)
        raise TaxiiError(403, "these collections are read only",
                         "darkscope shares what its telescope found; it takes no objects in")

    @api.post("/{api_root}/collections/{collection_id}/objects/")
    def add_objects(api_root: str, collection_id: str) -> JSONResponse:
        return read_only(api_root, collection_id)

    @api.delete("/{api_root}/collections/{collection_id}/objects/{object_id}/")
    def delete_object(api_root: str, collection_id: str, object_id: str) -> JSONResponse:
        return read_only(api_root, collection_id)

    @api.get("/{api_root}/status/{status_id}/")
    def status(api_root: str, status_id: str) -> JSONResponse:
        root_of(api_root)
        raise TaxiiError(404, "no such status: this server takes no objects in",
                         status_id[:100])

    return api
