from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class WorkorderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKORDER_", extra="ignore")

    service_name: str = "workorder"
    database_url: str = "sqlite+aiosqlite:///var/workorder.db"
