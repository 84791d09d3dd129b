from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class AcdSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACD_", extra="ignore")

    service_name: str = "acd"
    database_url: str = "sqlite+aiosqlite:///var/acd.db"
