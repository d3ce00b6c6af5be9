module github.com/cairnlog/cairn

go 1.26.8
