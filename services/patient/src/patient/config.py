from decimal import Decimal
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class PatientSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENT_", extra="ignore")

    service_name: str = "patient"
    database_url: str = "sqlite+aiosqlite:///var/patient.db"
    # AES-256-GCM key for ID-card numbers, base64 of 32 bytes. Empty in dev: one is made
    # under var/ and kept there; anywhere else an empty or placeholder key is refused.
    id_number_key: str = ""
    id_number_key_file: Path | None = None
    # WO-3.5: points earned per yuan of a completed order (1 = one point per yuan).
    points_per_yuan: Decimal = Field(default=Decimal(1), ge=0, max_digits=8, decimal_places=4)
    # How many medical records and completed orders the screen-pop lookup returns.
    lookup_recent_items: int = Field(default=5, ge=0, le=50)
