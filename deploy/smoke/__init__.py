"""make prod-smoke: drive the topology `make prod-up` stood up, through nginx over HTTPS,
as a visitor, a recipient and support would; then stop one web instance and one worker
in the middle of a run of sign-ups and show that sign-ups keep working and no consent
event or SMS is lost or sent twice. Prints a summary and exits 1 on any failure.

Each visitor is a client of its own loopback address (127.a.b.N, fresh a and b each
run), so the per-client limits and the sign-up breaker count them as the app would count
people; the code and welcome SMS are read from the file outbox (SMS_BACKEND=file).

`make prod-smoke` runs this package (``python -m deploy.smoke``): the stack it drives
(``stack``), what a visitor does (``visitors``), the scenes (``scenes``), the stop in the
middle (``resilience``), and the checks run and reported (``__main__``).
"""
