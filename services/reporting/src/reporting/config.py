from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    service_name: str = "reporting"
    database_url: str = "sqlite+aiosqlite:///var/reporting.db"
