from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class MessagingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGING_", extra="ignore")

    service_name: str = "messaging"
    database_url: str = "sqlite+aiosqlite:///var/messaging.db"
