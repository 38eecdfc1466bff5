"""What the tests share: one configuration factory, one way to wait, a driven clock, the
test photographs and a throw-away PostgreSQL server. Nothing here ships with bshmd."""
