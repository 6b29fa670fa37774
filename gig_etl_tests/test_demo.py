
from gig_etl.broker import free_port
from gig_etl.cli import DEMO_INTEGRATION, DEMO_TENANT, LIVE_INTEGRATION, LIVE_TENANT
from gig_etl.demo import fresh_demo_integration, run_demo
from gig_etl.lib.warehouse import embedded_lake, open_lake



def test_preparing_the_live_ui_keeps_what_the_demo_left(isolated_home):
    # Before, `make ui` and `make demo` shared the integration `demo`: the UI's
    # fresh start cleared the demo's warehouse rows without a word.
    lines = []
    run_demo(isolated_home, DEMO_INTEGRATION, DEMO_TENANT, free_port(), customers=20, seed=1, chaos=0.0, echo=lines.append)

    def demo_rows() -> int:
        with open_lake(embedded_lake(isolated_home), read_only=True) as db:
            return db.execute("SELECT count(*) FROM events WHERE integration = ?", [DEMO_INTEGRATION]).fetchall()[0][0]

    before = demo_rows()
    assert before > 0
    fresh_demo_integration(isolated_home, LIVE_INTEGRATION, LIVE_TENANT, free_port(), lines.append)
    assert demo_rows() == before
