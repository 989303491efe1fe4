module github.com/simclr-go/simclr

go 1.26.8
