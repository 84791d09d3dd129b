from acd.config import AcdSettings
from acd.models import Base
from callcenter_common.migrations import run_alembic_env

run_alembic_env(Base.metadata, lambda: AcdSettings().database_url)
