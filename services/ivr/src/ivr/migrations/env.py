from callcenter_common.migrations import run_alembic_env
from ivr.config import IvrSettings
from ivr.models import Base

run_alembic_env(Base.metadata, lambda: IvrSettings().database_url)
