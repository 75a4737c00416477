# The one decision of etcd-member: what this master does next about the cluster's membership.
# A pure function of what the agent saw, so every rule is tested without a network (test/etcd/decide.test.ts).
#
# Input:
#   self      {name, ip}                 this master
#   expected  the size of the masters group (MASTERS_COUNT in the role file)
#   dns       [ip]                       the live masters of the group (etcd.<cluster>.<domain>)
#   hasData   whether this master's etcd data folder holds a member
#   peers     {ip: "cluster" | "none" | "unreachable"}   what each other address in dns answered
#   clusters  [cluster id]               the distinct clusters those peers serve
#   members   [{id, name, ip, learner, started, healthy}]   the cluster's members, if one answered
#   snapshots "unconfigured" (no store) | "unreadable" (the store did not answer) | [name], newest first;
#             read only when no cluster answers and this master has no data
#   requested the snapshot `kubebake cluster restore` asked for, or null
#   refused   [name]   snapshots that failed their integrity check on this master
# Output: {action, reason, ...}; the agent carries it out and asks again until it is a start.
#   seed | restore {snapshot} | start-data | start-added {initialCluster} | add-learner | remove {id, name}
#   | discard-data | wait

def ipnum: split(".") | map(tonumber) | .[0] * 16777216 + .[1] * 65536 + .[2] * 256 + .[3];
def quorum(voters): (voters / 2 | floor) + 1;
def peer_url(ip): "https://\(ip):2380";

# Where a new cluster would start: from a snapshot when the store has one (every master was lost), empty
# only when the store has none. A store that cannot be read could hide the data: wait for it.
def new_cluster($why):
  (.refused // []) as $refused
  | (.snapshots // "unconfigured") as $snapshots
  | if $snapshots == "unreadable" then
      { action: "wait", reason: "\($why), but the snapshot store cannot be read: an empty cluster could hide lost data" }
    elif .requested != null then
      .requested as $r
      | if ($snapshots | type) != "array" or ($snapshots | index($r)) == null then
          { action: "wait", reason: "\($why); snapshot \($r) was asked for, but the store has no such snapshot" }
        elif ($refused | index($r)) != null then
          { action: "wait",
            reason: "\($why); snapshot \($r) was asked for, but it failed its integrity check: restore another one" }
        else
          { action: "restore", snapshot: $r, reason: "\($why); restoring snapshot \($r), as asked" }
        end
    elif ($snapshots | type) != "array" then
      { action: "seed", reason: $why }
    elif ($snapshots | length) == 0 then
      { action: "seed", reason: "\($why), and the store holds no snapshot" }
    else
      [$snapshots[] | select(. as $s | $refused | index($s) | not)] as $good
      | if ($good | length) == 0 then
          { action: "wait",
            reason: "\($why); every snapshot in the store failed its integrity check: an operator must look" }
        else
          { action: "restore", snapshot: $good[0],
            reason: "\($why); restoring the newest snapshot \($good[0])\(if ($refused | length) > 0 then " (refused: \($refused | join(", ")))" else "" end)" }
        end
    end;

.self as $self
| (.dns | unique) as $dns
| ($dns | map(select(. != $self.ip))) as $others
| (.members // []) as $members
| ($members | map(select(.ip == $self.ip)) | first) as $me
| ($members | map(select(.ip != $self.ip))) as $rest
| ($rest | map(select(.learner | not) | select(.healthy)) | length) as $healthyVoters
| ($members | map(select(.learner | not)) | length) as $voters
# Not a healthy member of the group (its address left the etcd record) and not answering: gone.
| ($rest | map(select((.healthy | not) and (.ip as $ip | $dns | index($ip) | not)))) as $dead
# Another master's join under way: added and not started yet, or started and not promoted yet.
| ($rest | map(select(.learner or (.started | not)))) as $joining
| (.peers // {}) as $peers
| ($others | map(select($peers[.] == "unreachable"))) as $unreachable

| if (.clusters | length) > 1 then
    { action: "wait",
      reason: "the peers serve \(.clusters | length) different clusters (\(.clusters | join(", "))); acting could join the wrong one, an operator must look" }

  elif .hasData then
    if (.clusters | length) == 0 then
      { action: "start-data", reason: "no peer serves a cluster; starting with this master's data (etcd waits for its quorum)" }
    elif $me != null and $me.started then
      { action: "start-data", reason: "still member \($me.id) of cluster \(.clusters[0])" }
    else
      { action: "discard-data",
        reason: "cluster \(.clusters[0]) no longer lists this master as a started member: its old data would split it; moving it aside" }
    end

  elif (.clusters | length) == 0 then
    if (.expected > 1) and ($dns | index($self.ip) | not) then
      { action: "wait", reason: "no cluster yet, and this master is not in the etcd record yet" }
    elif (.expected > 1) and ($dns | length) != .expected then
      { action: "wait", reason: "no cluster yet, and \($dns | length) of \(.expected) masters are in the etcd record" }
    elif ($unreachable | length) > 0 then
      { action: "wait",
        reason: "no cluster answers, but \($unreachable | join(", ")) cannot be reached: a partition or a master still booting could hide a running cluster" }
    elif ($others | map(select($peers[.] != "none")) | length) > 0 then
      { action: "wait", reason: "no answer yet from \($others | map(select($peers[.] != "none")) | join(", "))" }
    elif ($others | length) == 0 then
      new_cluster("no cluster anywhere, and no other master in the record of a one-master group")
    elif ([$dns[], $self.ip] | unique | min_by(ipnum)) == $self.ip then
      new_cluster("no cluster anywhere, every other master answers without one, and this master has the lowest address")
    else
      { action: "wait",
        reason: "no cluster yet; the seed is \([$dns[], $self.ip] | unique | min_by(ipnum)), the lowest address" }
    end

  elif $me != null and $me.started then
    if $me.learner or ($healthyVoters >= quorum($voters - 1)) then
      { action: "remove", id: $me.id, name: $me.name,
        reason: "this master's old member \($me.id) has no data here (a new disk); removing it to join afresh" }
    else
      { action: "wait",
        reason: "this master's old member \($me.id) has no data here, but removing it would leave \($healthyVoters) healthy of \($voters - 1) voters" }
    end

  elif ($dead | length) > 0 then
    ($dead[0]) as $d
    | if $d.learner or ($healthyVoters >= quorum($voters - 1)) then
        { action: "remove", id: $d.id, name: $d.name,
          reason: "member \($d.name) (\($d.ip)) is no healthy master of the group and does not answer" }
      else
        { action: "wait",
          reason: "member \($d.name) (\($d.ip)) is gone, but removing it would leave \($healthyVoters) healthy of \($voters - 1) voters" }
      end

  elif $me != null then
    { action: "start-added",
      initialCluster: ([$members[] | select(.started and .ip != $self.ip) | "\(.name)=\(peer_url(.ip))"]
                       + ["\($self.name)=\(peer_url($self.ip))"] | join(",")),
      reason: "added to cluster \(.clusters[0]) as member \($me.id); starting to catch up" }

  elif ($joining | length) > 0 then
    { action: "wait", reason: "the master at \($joining[0].ip) is joining; one learner at a time" }

  else
    { action: "add-learner", reason: "cluster \(.clusters[0]) has \($voters) voters, all healthy or still masters of the group; joining as a learner" }
  end
