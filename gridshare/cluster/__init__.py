"""gridshare as a cluster: the bus between nodes, on NATS JetStream.

- `lease.py`: one planner per site, a lease in a JetStream key-value bucket
  (create to acquire, update-with-revision to renew, the bucket's TTL to end
  a dead holder's); its fencing token is the revision of the acquiring write.
- `events.py`: station events on a stream, acknowledged by JetStream before
  the station is answered, de-duplicated by message id, read by the site's
  planner through a durable consumer that acks after writing through.
- `commands.py`: commands to stations as requests on the station's subject,
  answered by whichever gateway holds its socket; `fencing.py` refuses a
  command whose token is older than the newest seen for its site.
- `names.py`, `settings.py`, `connection.py` (nats-py's errors translated),
  `errors.py` (the tree).

No home-made election or consensus: JetStream's atomic writes decide.
"""
