from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class RecordingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECORDING_", extra="ignore")

    service_name: str = "recording"
    database_url: str = "sqlite+aiosqlite:///var/recording.db"
