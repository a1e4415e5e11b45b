import pytest
from sqlalchemy import text

from dicomhaven.catalogue import make_engine
from tests.postgres import PostgresServer


@pytest.mark.integration
def test_postgres_server_answers(postgres: PostgresServer) -> None:
    engine = make_engine(postgres.create_database("peer_check"))
    with engine.connect() as conn:
        assert conn.execute(text("select 1 + 1")).scalar() == 2
