// probe, the test pods' program (test/upstream/build-images.sh): our own code, the standard library only.
module kubebake.invalid/upstream/images/probe

go 1.26.0
