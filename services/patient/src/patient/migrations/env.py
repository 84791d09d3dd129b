from callcenter_common.migrations import run_alembic_env
from patient.config import PatientSettings
from patient.models import Base

run_alembic_env(Base.metadata, lambda: PatientSettings().database_url)
