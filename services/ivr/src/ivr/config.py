from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class IvrSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IVR_", extra="ignore")

    service_name: str = "ivr"
    database_url: str = "sqlite+aiosqlite:///var/ivr.db"
