module github.com/berth-dev/berth/examples/go

go 1.19

require github.com/berth-dev/berth/gen/go v0.0.0

replace github.com/berth-dev/berth/gen/go => ../../gen/go
