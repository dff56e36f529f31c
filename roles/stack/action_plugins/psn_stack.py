"""psn_stack: deploy one PSN stack from its service map, updating only what changed.

Runs on the controller (run_once, delegated to the first manager) and decides with psn.stack:
checks the map, names the secrets after their values, hashes each service's rendered config
files, builds the compose document pinned to the registry's image digests, compares it with the
deployed services, writes /opt/poseidon/psn-<stack>-stack.yml, creates the secrets and deploys
the services that are missing or changed (removing those that left the map). Everything on the
manager goes through standard modules (uri, command, slurp, copy, docker_secret, docker_stack).

--check reports what would change and touches nothing; --diff shows each changing service's
definition before and after. roles/stack/README.md documents the inputs and outputs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from psn import stack

ARGS = {
    "name": None,
    "role": "stack",
    "services": None,
    "secrets": {},
    "volumes": {},
    "networks": ["psn-db"],
    "base_dir": "/opt/poseidon",
    "image_prefix": None,
    "version": None,
    "health_interval": "10s",
    "force": False,
}


class ActionModule(ActionBase):
    """The psn_stack action (see the module docstring)."""

    _VALID_ARGS = frozenset(ARGS)
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    @contextmanager
    def _task_flags(
        self, *, check_mode: bool | None = None, no_log: bool | None = None
    ) -> Iterator[None]:
        """Run a sub-module with the task's check mode or no_log switched for its call."""
        saved = (self._task.check_mode, self._task.no_log)
        try:
            if check_mode is not None:
                self._task.check_mode = check_mode
            if no_log is not None:
                self._task.no_log = no_log
            yield
        finally:
            self._task.check_mode, self._task.no_log = saved

    def _module(
        self,
        name: str,
        args: dict[str, Any],
        task_vars: dict[str, Any],
        *,
        read_only: bool = False,
        secret: bool = False,
    ) -> dict[str, Any]:
        """Run a module on the manager; read-only ones run in check mode too."""
        with self._task_flags(
            check_mode=False if read_only else None, no_log=True if secret else None
        ):
            result = self._execute_module(module_name=name, module_args=args, task_vars=task_vars)
        if result.get("failed"):
            what = "a secret" if secret else f"{name} {args.get('argv') or ''}"
            raise AnsibleActionFail(f"psn_stack: {what} failed: {result.get('msg', '')}".strip())
        return result

    def _config_texts(self, svc: Mapping[str, Any], task_vars: dict[str, Any]) -> list[str]:
        """The service's config files rendered as the template task renders them on its hosts."""
        files = [c["src"] for c in svc.get("configs") or []]
        if not files:
            return []
        variables = dict(task_vars)
        if svc.get("host"):
            variables.update(task_vars["hostvars"][svc["host"]])
        lookup = self._shared_loader_obj.lookup_loader.get(
            "ansible.builtin.template", loader=self._loader, templar=self._templar
        )
        return [str(text) for text in lookup.run(files, variables=variables)]

    def _digests(
        self, images: list[str], prefix: str, version: str, task_vars: dict[str, Any]
    ) -> dict[str, str]:
        """Manifest digest of each image in the registry; fails naming the missing ones."""
        registry, repository = prefix.split("/", 1)
        digests, missing = {}, []
        for image in images:
            res = self._module(
                "ansible.builtin.uri",
                {
                    "url": f"https://{registry}/v2/{repository}/{image}/manifests/{version}",
                    "method": "HEAD",
                    "ca_path": f"/etc/docker/certs.d/{registry}/ca.crt",
                    "headers": {
                        "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                        "application/vnd.oci.image.manifest.v1+json"
                    },
                    "status_code": [200, 404],
                    "timeout": 10,
                },
                task_vars,
                read_only=True,
            )
            if res.get("status") == 200:
                digests[image] = res["docker_content_digest"]
            else:
                missing.append(f"{prefix}/{image}:{version}")
        if missing:
            raise AnsibleActionFail(
                f"the registry has no {', '.join(missing)}. Fix: deploy the registry with an image "
                f"archive of version {version} (`./deploy_psn.sh <inventory> -t docker_registry`, "
                f"archive images/dist/psn-images-{version}.tar)."
            )
        return digests

    def _deployed_labels(self, name: str, task_vars: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Labels of each deployed service of stack psn-<name>, by full service name."""
        ids = self._module(
            "ansible.legacy.command",
            {
                "argv": [
                    "docker",
                    "service",
                    "ls",
                    "-q",
                    "--filter",
                    f"label=com.docker.stack.namespace=psn-{name}",
                ]
            },
            task_vars,
            read_only=True,
        )["stdout"].split()
        if not ids:
            return {}
        specs = self._module(
            "ansible.legacy.command",
            {"argv": ["docker", "service", "inspect", "--format", "{{json .Spec}}", *ids]},
            task_vars,
            read_only=True,
        )["stdout_lines"]
        return {spec["Name"]: spec.get("Labels") or {} for spec in map(json.loads, specs)}

    def _previous_file(self, path: str, task_vars: dict[str, Any]) -> str:
        """The stack file the last run wrote ('' when there is none)."""
        res = self._module(
            "ansible.builtin.stat", {"path": path, "get_checksum": False}, task_vars, read_only=True
        )
        if not res["stat"]["exists"]:
            return ""
        content = self._module("ansible.builtin.slurp", {"src": path}, task_vars, read_only=True)
        return base64.b64decode(content["content"]).decode()

    def _write_file(self, path: str, content: str, task_vars: dict[str, Any]) -> None:
        """Write the stack file through the copy action (root-owned, 0644)."""
        task = self._task.copy()
        task.args = {
            "content": content,
            "dest": path,
            "owner": "root",
            "group": "root",
            "mode": "0644",
        }
        task.diff = False
        copy = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.copy",
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        res = copy.run(task_vars=task_vars)
        if res.get("failed"):
            raise AnsibleActionFail(f"psn_stack: writing {path} failed: {res.get('msg', '')}")

    def run(
        self, tmp: str | None = None, task_vars: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        # Plain JSON types: Ansible's tagged strings are not YAML-representable, and the
        # decisions must not depend on how a value was templated.
        args = json.loads(
            json.dumps({key: self._task.args.get(key, default) for key, default in ARGS.items()})
        )
        for required in ("name", "services", "image_prefix", "version"):
            if args[required] in (None, ""):
                raise AnsibleActionFail(f"psn_stack: {required} is required")
        name, services, secrets = args["name"], args["services"], args["secrets"]

        problems = stack.check_service_map(
            name, services, secrets, args["volumes"], task_vars.get("groups", {}), args["role"]
        )
        if problems:
            raise AnsibleActionFail(
                "Invalid service map: " + "; ".join(p.render() for p in problems)
            )

        names = stack.secret_names(name, secrets)
        hashes = {
            service: stack.config_hash(
                self._config_texts(svc, task_vars),
                [names[s["name"]] for s in svc.get("secrets") or []],
            )
            for service, svc in services.items()
        }
        images = sorted({svc["image"] for svc in services.values()})
        inputs = stack.StackInputs(
            name=name,
            services=services,
            image_prefix=args["image_prefix"],
            version=args["version"],
            digests=self._digests(images, args["image_prefix"], args["version"], task_vars),
            config_hashes=hashes,
            secret_names=names,
            volumes=args["volumes"],
            networks=args["networks"],
            base_dir=args["base_dir"],
            health_interval=args["health_interval"],
        )
        doc = stack.compose_document(inputs)
        path = f"{args['base_dir']}/psn-{name}-stack.yml"
        content = stack.stack_file(doc, name, path, args["role"])
        previous = self._previous_file(path, task_vars)
        planned = stack.plan(
            name, doc, self._deployed_labels(name, task_vars), force=bool(args["force"])
        )

        result.update(
            services=stack.service_names(name, doc),
            secret_names=names,
            deploy=[f"psn-{name}_{s}" for s in planned.deploy],
            remove=planned.remove,
            stack_file=path,
            stack_file_content=content,
            changed=planned.changed or content != previous,
        )
        if self._task.diff and planned.changed:
            result["diff"] = stack.service_diffs(name, previous, doc, planned)
        if self._task.check_mode:
            return result

        if content != previous:
            self._write_file(path, content, task_vars)
        for key, value in secrets.items():
            self._module(
                "community.docker.docker_secret",
                {
                    "name": names[key],
                    "data": value,
                    "labels": {"io.psn.stack": f"psn-{name}", "io.psn.secret": key},
                    "state": "present",
                },
                task_vars,
                secret=True,
            )
        if planned.deploy:
            self._module(
                "community.docker.docker_stack",
                {
                    "name": f"psn-{name}",
                    "compose": [stack.only_services(doc, planned.deploy)],
                    "resolve_image": "always",
                    "state": "present",
                },
                task_vars,
            )
        for service in planned.remove:
            self._module(
                "ansible.legacy.command", {"argv": ["docker", "service", "rm", service]}, task_vars
            )
        return result
