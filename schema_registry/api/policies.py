"""/compatibility, /config and /mode."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from schema_registry.api.deps import MetricsDep, NormalizeQuery, SchemaBody, ServiceDep, SubjectDep

router = APIRouter(tags=["compatibility", "config", "mode"])
VerboseQuery = Annotated[bool, Query(description="say why a schema is incompatible")]
DefaultToGlobal = Annotated[bool, Query(alias="defaultToGlobal", description="fall back to the global value")]
ForceQuery = Annotated[bool, Query(description="switch to IMPORT even though subjects exist")]
JsonObject = Annotated[dict[str, Any], Body(description="a JSON object")]


def _compat_answer(messages: list[str], verbose: bool, metrics: MetricsDep) -> dict[str, Any]:
    if messages:
        metrics.compatibility_failures.inc()
    answer: dict[str, Any] = {"is_compatible": not messages}
    if verbose:
        answer["messages"] = messages
    return answer


@router.post("/compatibility/subjects/{subject}/versions/{version}")
def check_against_version(
    service: ServiceDep,
    metrics: MetricsDep,
    subject: SubjectDep,
    version: str,
    body: SchemaBody,
    verbose: VerboseQuery = False,
    normalize: NormalizeQuery = False,
) -> dict[str, Any]:
    messages = service.incompatibilities(subject, body.to_request(), version=version, normalize=normalize)
    return _compat_answer(messages, verbose, metrics)


@router.post("/compatibility/subjects/{subject}/versions")
def check_against_all(
    service: ServiceDep,
    metrics: MetricsDep,
    subject: SubjectDep,
    body: SchemaBody,
    verbose: VerboseQuery = False,
    normalize: NormalizeQuery = False,
) -> dict[str, Any]:
    messages = service.incompatibilities(subject, body.to_request(), normalize=normalize)
    return _compat_answer(messages, verbose, metrics)


def _field(body: dict[str, Any], *names: str) -> Any:
    return next((body[n] for n in names if n in body), None)


@router.get("/config")
def get_global_config(service: ServiceDep) -> dict[str, str]:
    return {"compatibilityLevel": service.policies.global_compatibility()}


@router.put("/config")
def put_global_config(service: ServiceDep, body: JsonObject) -> dict[str, str]:
    level = _field(body, "compatibility", "compatibilityLevel")
    return {"compatibility": service.write_policy(lambda p: p.set_compatibility(None, level))}


@router.delete("/config")
def delete_global_config(service: ServiceDep) -> dict[str, str]:
    return {"compatibilityLevel": service.write_policy(lambda p: p.delete_compatibility(None))}


@router.get("/config/{subject}")
def get_subject_config(
    service: ServiceDep, subject: SubjectDep, default_to_global: DefaultToGlobal = False
) -> dict:
    return {
        "compatibilityLevel": service.policies.subject_compatibility(
            subject, default_to_global=default_to_global
        )
    }


@router.put("/config/{subject}")
def put_subject_config(service: ServiceDep, subject: SubjectDep, body: JsonObject) -> dict[str, str]:
    level = _field(body, "compatibility", "compatibilityLevel")
    return {"compatibility": service.write_policy(lambda p: p.set_compatibility(subject, level))}


@router.delete("/config/{subject}")
def delete_subject_config(service: ServiceDep, subject: SubjectDep) -> dict[str, str]:
    return {"compatibilityLevel": service.write_policy(lambda p: p.delete_compatibility(subject))}


@router.get("/mode")
def get_global_mode(service: ServiceDep) -> dict[str, str]:
    return {"mode": service.policies.global_mode()}


@router.put("/mode")
def put_global_mode(service: ServiceDep, body: JsonObject, force: ForceQuery = False) -> dict[str, str]:
    return {"mode": service.write_policy(lambda p: p.set_mode(None, body.get("mode"), force=force))}


@router.delete("/mode")
def delete_global_mode(service: ServiceDep) -> dict[str, str]:
    return {"mode": service.write_policy(lambda p: p.delete_mode(None))}


@router.get("/mode/{subject}")
def get_subject_mode(
    service: ServiceDep, subject: SubjectDep, default_to_global: DefaultToGlobal = False
) -> dict:
    return {"mode": service.policies.subject_mode(subject, default_to_global=default_to_global)}


@router.put("/mode/{subject}")
def put_subject_mode(
    service: ServiceDep, subject: SubjectDep, body: JsonObject, force: ForceQuery = False
) -> dict[str, str]:
    return {"mode": service.write_policy(lambda p: p.set_mode(subject, body.get("mode"), force=force))}


@router.delete("/mode/{subject}")
def delete_subject_mode(service: ServiceDep, subject: SubjectDep) -> dict[str, str]:
    return {"mode": service.write_policy(lambda p: p.delete_mode(subject))}
