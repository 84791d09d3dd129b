from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class PatientSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENT_", extra="ignore")

    service_name: str = "patient"
    database_url: str = "sqlite+aiosqlite:///var/patient.db"
