"""servicekit once installed: VAR_DIR follows the project (not site-packages), service settings name any package,
and an optional dependency that is missing names the extra that brings it."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicekit import env
from servicekit.optional import MissingExtra, optional_import
from servicekit.service_settings import service_settings

REPO = Path(__file__).resolve().parents[2]


def test_the_example_projects_keep_var_in_the_repository():
    assert env.project_root("monolith.settings") == REPO
    assert env.project_root("extracted.catalog.settings") == REPO


def test_a_project_elsewhere_gets_var_in_its_own_folder(tmp_path, monkeypatch):
    (tmp_path / "shopsite").mkdir()
    (tmp_path / "shopsite" / "__init__.py").write_text("")
    (tmp_path / "shopsite" / "settings.py").write_text("raise RuntimeError('not imported to find the folder')\n")
    (tmp_path / "flat_settings_for_test.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert env.project_root("shopsite.settings") == tmp_path
    assert env.project_root("flat_settings_for_test") == tmp_path
    monkeypatch.delenv("STRANGLER_VAR_DIR", raising=False)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "shopsite.settings")
    assert env.var_dir() == tmp_path / "var"


def test_without_settings_the_working_directory_holds_var(tmp_path, monkeypatch):
    monkeypatch.delenv("STRANGLER_VAR_DIR", raising=False)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert env.var_dir() == tmp_path / "var"
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "no_such_project_anywhere.settings")
    assert env.var_dir() == tmp_path / "var"


def test_strangler_var_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "monolith.settings")
    assert env.var_dir() == tmp_path / "state"


def settings_for(package: str, **extra) -> dict:
    return service_settings(package=package, project="orders", database_var_name="ORDERS_DATABASE_URL",
                            apps=["orders_service.orders"], authentication=[], api_title="Orders",
                            api_description="Orders service", **extra)


def test_service_settings_name_the_service_package(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "VAR_DIR", tmp_path)
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = settings_for("orders_service")
    assert config["ROOT_URLCONF"] == "orders_service.urls"
    assert config["WSGI_APPLICATION"] == "orders_service.wsgi.application"
    assert config["SPECTACULAR_SETTINGS"]["PREPROCESSING_HOOKS"] == ["servicekit.openapi.public_api_only"]
    assert "orders_service.orders" in config["INSTALLED_APPS"] and "strangler_sync" in config["INSTALLED_APPS"]
    hooked = settings_for("orders_service", schema_hooks=["orders_service.schema.public_only"])
    assert hooked["SPECTACULAR_SETTINGS"]["PREPROCESSING_HOOKS"] == ["servicekit.openapi.public_api_only",
                                                                     "orders_service.schema.public_only"]
    with pytest.raises(env.ConfigError, match="must name the service's package"):
        settings_for("")


def test_a_missing_optional_dependency_names_its_extra():
    with pytest.raises(MissingExtra) as caught:
        optional_import("strangler_no_such_dependency.sub", extra="proxy", needed_for="strangler-proxy run")
    assert str(caught.value) == ("strangler-proxy run needs strangler_no_such_dependency, which is not installed: "
                                 "pip install 'strangler-fig[proxy]'")
    assert isinstance(caught.value, ImportError)  # callers that catch ImportError still do


def test_a_broken_optional_dependency_is_not_blamed_on_the_extra(tmp_path, monkeypatch):
    (tmp_path / "half_installed_dependency.py").write_text("import strangler_no_such_transitive_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        optional_import("half_installed_dependency", extra="proxy", needed_for="x")
    assert not isinstance(caught.value, MissingExtra)
    assert caught.value.name == "strangler_no_such_transitive_module"

